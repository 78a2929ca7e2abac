"""The dispatch engine: background loops that move campaigns and their tasks along.

Today it holds the sweep that starts scheduled campaigns; the dialing loop joins it with the engine issue.
"""
