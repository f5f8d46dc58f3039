import atexit
import contextlib
import os
import sys

from pipelines.cli import main

code = main()
# Exit handlers run as usual; what is skipped is the interpreter's teardown of every module and
# object, which takes about a second once the SageMaker SDK (thousands of classes) is loaded.
atexit._run_exitfuncs()
for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(BrokenPipeError, ValueError):  # a reader like `head` may have gone
        stream.flush()
os._exit(code or 0)
