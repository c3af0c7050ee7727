"""The documentation stays in step with shim/cg_vars.h and with the tool's options."""
import os
import re
import shutil
import subprocess

import cglib
from cglib import check

DOCS = os.path.join(cglib.ROOT, "docs")


def _vars():
    text = open(os.path.join(cglib.ROOT, "shim", "cg_vars.h")).read()
    found = re.findall(r'X\((\w+),\s*(\w+),\s*"([^"]*)",', text)
    check(len(found) >= 19, "cg_vars.h parsed", got=found)
    return found


def _man_text(path):
    """The page as a reader sees it (groff escapes removed)."""
    t = open(path).read()
    t = re.sub(r"\\f[BIRP]", "", t)
    return t.replace("\\-", "-").replace("\\(em", "-")


def test_every_variable_is_in_the_man_page_with_its_default():
    man = _man_text(os.path.join(DOCS, "libconnguard.7"))
    for name, kind, default in _vars():
        m = re.search(r"^\.B CONNGUARD_%s\n(.*?)(?=^\.TP|^\.SH)" % name, man, re.M | re.S)
        check(m, "libconnguard.7 has an entry for CONNGUARD_%s" % name)
        body = m.group(1)
        if default:
            check(re.search(r"^Default: %s\b" % re.escape(default), body, re.M), "default of %s in libconnguard.7" % name, got=body)
        else:
            check(body.startswith("Default: empty"), "empty default of %s" % name, got=body)
        check("Example: " in body and ("CONNGUARD_%s=" % name) in body, "an example for %s" % name, got=body)


def test_every_variable_is_in_the_readme_table():
    readme = open(os.path.join(cglib.ROOT, "README.md")).read()
    for name, kind, default in _vars():
        m = re.search(r"^\| `CONNGUARD_%s` \| ([^|]*) \|" % name, readme, re.M)
        check(m, "README.md lists CONNGUARD_%s" % name)
        if default:
            check(m.group(1).strip() == "`%s`" % default, "README default of %s" % name, got=m.group(0))


def test_every_run_option_is_documented_and_every_variable_has_an_option():
    page = _man_text(os.path.join(DOCS, "connguard.1"))
    r = cglib.run([cglib.TOOL, "--help"], preload=False)
    opts = set(re.findall(r"(--[a-z][a-z-]+)", r.out))
    check(len(opts) > 20, "options in --help", got=r.out)
    for o in sorted(opts):
        check(o in page, "connguard.1 documents %s" % o)
    # Every variable can be set from the command line (by its own option, or --set NAME=VALUE),
    # and the page names each one.
    for name, kind, default in _vars():
        check("CONNGUARD_%s" % name in page, "connguard.1 mentions CONNGUARD_%s" % name)
        value = default or {"ONLY": "*:443", "SKIP": "*:25"}.get(name, "")
        r = cglib.run([cglib.TOOL, "--dry-run", "--set", "%s=%s" % (name, value), "--", "true"], preload=False)
        check(r.returncode == 0 and "CONNGUARD_%s=" % name in r.out, "--set %s" % name, got=r.out + r.err)


def test_man_pages_render_without_warnings():
    if not shutil.which("groff"):
        raise cglib.Skip("groff not installed")
    for page in ("connguard.1", "libconnguard.7"):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(DOCS, page)],
                           capture_output=True, timeout=60)
        check(r.returncode == 0 and r.stderr == b"", "groff warnings in " + page, got=r.stderr.decode())


def test_docs_exist_and_link():
    for f in ("recipes.md", "limits.md", "design.md"):
        check(os.path.exists(os.path.join(DOCS, f)), "docs/" + f)
    limits = open(os.path.join(DOCS, "limits.md")).read()
    for topic in ("Statically linked", "Go programs", "setuid", "TLS compiled into"):
        check(topic in limits, "limits.md covers " + topic)
    recipes = open(os.path.join(DOCS, "recipes.md")).read()
    for topic in ("systemd", "container image", "CI that fails on leaks", "JSON logs", "metrics"):
        check(topic in recipes, "recipes.md covers " + topic)
