"""Test support shared by every part of the suite (broker, ports, processes)."""
