"""p2p_demo: the demo page's Python, its scripted game, and the tools around it.

In the browser the demo page installs ``p2p_transport`` and this package and runs
:class:`~p2p_demo.tab.DemoTab`. On CPython, ``python -m p2p_demo`` launches the demo
(:mod:`~p2p_demo.launcher`); :mod:`~p2p_demo.harness` starts Chromium and coturn for it and for
the browser tests, :mod:`~p2p_demo.stall_probe` stalls a tab while the other pings it, and
``python -m p2p_demo.plot_telemetry`` plots the telemetry a run kept.
"""
