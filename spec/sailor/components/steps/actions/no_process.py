"""A module without process(): the sailor emits 'Process function is not found' and rejects."""

VALUE = 1
