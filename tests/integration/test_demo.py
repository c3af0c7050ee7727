"""make demo (scripts/demo.sh): prints exactly what it runs, no escape codes into a pipe or a
file, recovers, and leaves nothing behind."""
import os
import re
import shlex

import cglib
from cglib import check


def test_demo_shows_what_it_runs():
    if not os.path.exists("/usr/bin/curl"):
        raise cglib.Skip("curl not installed")
    script = os.path.join(cglib.ROOT, "scripts", "demo.sh")
    p = cglib.run(["bash", script], env={"BUILD": cglib.BUILD}, preload=False, timeout=60)
    check(p.returncode == 0, "the demo's curl recovers (exit 0)", got=p.out + p.err)
    check("\x1b" not in p.out + p.err, "no escape codes when stdout is not a terminal", got=repr(p.out[:300]))
    cmds = [shlex.split(line[2:]) for line in p.out.splitlines() if line.startswith("$ ")]
    check(len(cmds) == 2, "two commands shown", got=p.out)
    shown = dict(a.split("=", 1) for a in cmds[1] if re.match(r"^[A-Z_]+=", a))
    # Every variable the script sets for its client appears in the command it shows.
    src = "\n".join(l for l in open(script).read().splitlines()
                    if not re.match(r"\s*(#|echo |say |printf )", l))
    for name in set(re.findall(r"\b((?:CONNGUARD_[A-Z_]+|LD_PRELOAD))=", src)):
        check(name in shown, "the shown command sets %s as the script does" % name, got=cmds[1])
    check(shown["LD_PRELOAD"] == cglib.SHIM and cmds[1][len(shown)] == "curl", "preload and client", got=cmds[1])
    # What was shown is what ran: the log has the records, with the stack depth that was shown.
    check("connect_recovered" in p.out, "the log shows the recovery", got=p.out)
    depth = int(shown.get("CONNGUARD_STACK_DEPTH", "16"))
    frames = [int(m) for m in re.findall(r"^==\d+==\s+#(\d+) ", p.out, re.M)]
    check(frames and max(frames) == depth - 1, "stacks of the depth shown", got=p.out)
    check(not os.path.exists(os.path.dirname(shown["CONNGUARD_LOG"])), "the log's temporary directory is removed")
