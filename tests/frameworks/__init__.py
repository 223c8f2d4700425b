"""The framework integrations, driven through each framework's own test client and CLI."""
