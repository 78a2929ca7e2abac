"""Repositories: every query lives here, built from a session; services never write SQL."""
