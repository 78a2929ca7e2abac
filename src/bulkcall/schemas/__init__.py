"""Request and response shapes shared by the HTTP layer and the services."""
