"""A load test without browsers: N simulated visitors speaking Streamlit's own WebSocket
protocol to one server (issue 18, section 3).

* :mod:`loadtest.protocol`: the front end's side of the protocol as data (rerun
  BackMsgs, the message cache, the element tree, widget states); no I/O.
* :mod:`loadtest.client`: one session over a real WebSocket (``websockets``).
* :mod:`loadtest.scenario`: N sessions open, press, wait, close; figures per session
  and over sessions.
* ``python -m loadtest``: the command line (starts its own server by default, samples
  it from /proc, checks its resources after close); :mod:`loadtest.browser` adds one
  real Chromium page alongside.

README.md, "Load testing without browsers", says how to run it and what it reports.
"""
