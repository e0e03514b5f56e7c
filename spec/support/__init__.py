"""Test support shared by every part of the suite (broker, ports, processes).

One of each (issue 12, item 5):

* **Ports**: :func:`spec.support.ports.free_port` is the only free-port helper (the broker asks it for a
  port whose Erlang companion ``port + 20000`` is free too); ``closed_port_url`` gives a loopback URL
  nobody listens on.
* **Launching the emulator**: the specs never spawn the emulator themselves; a separate process always
  comes from :class:`spec.support.emulator.EmulatorProcess` — the CLI specs (the installed
  ``metering-emulator`` console script and ``python -m metering_emulator``, exit codes, stdout/stderr) and
  the end-to-end flow harness (its own CPU and log files). Where a process is not the point, specs use
  the emulator package's own public test helper, ``metering_emulator.testing.EmulatorServer``, through
  its pytest plugin fixture ``metering_emulator`` (one server per session, reset before each test) or
  directly when a test needs start-up options; that helper is part of the emulator's documented API
  (emulator/README.md, docs/architecture.md §2), so the specs use it as a user would rather than wrap it,
  and wrapping it here would only add a second name for the same thing. Both kinds have ``url`` and
  ``admin`` (the emulator's ``AdminClient``), so helpers such as ``spec.emulator.support.client`` take
  either.
"""
