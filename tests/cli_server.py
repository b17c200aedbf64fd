"""A fork server for the tests' ``python -m spinsim`` calls.

Every CLI call of the suite as a fresh interpreter pays about two seconds of imports (torch
alone 1.6 s on the 2-core machine) before spinsim reads its first key; the suite makes a
hundred such calls. This server imports the CLI once and forks a child for each call: the
child is its own process (own exit status, stdout, stderr, working directory), started
from an interpreter that has imported the package and done nothing else, as a fresh
``python -m spinsim`` would be after its imports.

Protocol: one JSON request a line on stdin, ``{"args", "cwd", "timeout", "env"}``; one JSON reply a
line on the reply pipe (file descriptor given as argv[1]), ``{"returncode", "stdout",
"stderr"}``, or ``{"timeout": true}`` after killing a child that ran past its time.
:func:`tests.conftest.spinsim_cli` uses it where a call brings no environment of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time


def _child(args: list[str], cwd: str, env: dict[str, str], out_path: str, err_path: str) -> None:
    """In the forked child: become ``python -m spinsim <args>`` in ``cwd`` with environment
    ``env`` and exit with its status."""
    code = 1
    try:
        import atexit

        atexit._clear()  # the server's exit functions are not this process's
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.path[0] = os.getcwd()  # as ``python -m`` puts it
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, out_path), (2, err_path)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import runpy

        sys.argv = ["-m", *args]
        try:
            runpy.run_module("spinsim", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:
            if stop.code is None:
                code = 0
            elif isinstance(stop.code, int):
                code = stop.code
            else:
                print(stop.code, file=sys.stderr)
                code = 1
        except BaseException:  # what the interpreter would print for an uncaught exception
            import traceback

            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(reply_fd: int) -> None:
    import spinsim.cli  # noqa: F401  the imports every call shares
    import spinsim.commands.simulate  # noqa: F401

    reply = os.fdopen(reply_fd, "w")
    for line in sys.stdin:
        request = json.loads(line)
        folder = tempfile.mkdtemp(prefix="spinsim-cli-")
        try:
            out_path, err_path = os.path.join(folder, "out"), os.path.join(folder, "err")
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request["args"], request["cwd"], request["env"], out_path, err_path)
            deadline = time.monotonic() + float(request["timeout"])
            status = None
            while status is None:
                done, status_word = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = status_word
                elif time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                else:
                    time.sleep(0.005)
            if status is None:
                answer = {"timeout": True}
            else:
                with open(out_path, errors="replace") as out, open(err_path, errors="replace") as err:
                    answer = {"returncode": os.waitstatus_to_exitcode(status), "stdout": out.read(),
                              "stderr": err.read()}  # fmt: skip
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        reply.write(json.dumps(answer) + "\n")
        reply.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
