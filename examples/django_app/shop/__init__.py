"""A tiny shop: orders, and a job that confirms each one."""
