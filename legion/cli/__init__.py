"""The ``legion`` / ``legionctl`` command.

Commands that start a service (``serve``) import that service's runner; every other command talks to services
over HTTP or works on local files through ``legion.model``. Errors print ``Error: <detail>`` and exit with the
error's ``exit_code``; no traceback reaches the user.
"""
