"""The pytest plugin (entry point ``pytest11``): fixtures only; nothing happens unless a test
uses one."""
