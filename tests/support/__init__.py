"""Test support: the real PBX sandbox, mosquitto and AMI driver, and their pytest fixtures."""
