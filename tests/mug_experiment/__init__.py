"""The deployed interactive_gym / mug server for the tests: its smallest P2P experiment
(``experiment.py``, run by the server's own venv) and a handle that starts it (``server.py``)."""
