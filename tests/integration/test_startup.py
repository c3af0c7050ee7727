"""Start-up (issue 12 item 3): a process that makes no socket writes no page of the shim's .bss.
Every page a process first writes costs it a page fault (~25 us on these VMs), and most processes
(shells, sleep, cat) never make a socket: the variables the constructor writes, the configuration
and the real functions' table live in the shim's .data, on the pages the loader writes anyway
(shim/core/startup.h, docs/design.md "Start-up"). Speed itself is measured by `make bench`."""
import cglib
from cglib import check
from cgconn import client


def pages(env=None):
    """'bss_present=N' from rb_startup_pages, after checking it found the shim's .bss."""
    p = cglib.run([client("rb_startup_pages")], env=env)
    check(p.returncode == 0 and p.err == "", "rb_startup_pages runs under the shim", got=p.out + p.err)
    words = dict(w.split("=") for w in p.out.split())
    check(words.get("shim_mapped") == "1" and int(words.get("bss_pages", 0)) > 100,
          "rb_startup_pages found the shim's .bss (its 3.7 MB of tables)", got=p.out)
    return "bss_present=" + words["bss_present"]


def test_start_up_writes_no_page_of_bss():
    """Under the shim with defaults, with variables that change the configuration (which is then
    written: it is in .data), and with leak tracking off: no page of the shim's .bss mapping is
    present at main()."""
    if cglib.SAN_PRELOAD:
        raise cglib.Skip("the sanitizer runtime's instrumentation writes the shim's globals' shadow and layout differs")
    for env in (None, {"CONNGUARD_RETRIES": "3", "CONNGUARD_SKIP": "*:443", "CONNGUARD_JITTER": "full"},
                {"CONNGUARD_LEAKS": "off"}):
        got = pages(env)
        check(got == "bss_present=0",
              "start-up wrote a page of the shim's .bss (a page fault in every process)",
              got="%s with %r" % (got, env))


def test_start_up_page_check_sees_a_write():
    """The premise: the same client sees a page of .bss that start-up did write, when the log is
    a file (its path template is kept in .bss: only such a process pays for it)."""
    if cglib.SAN_PRELOAD:
        raise cglib.Skip("layout differs under the sanitizer build")
    got = pages({"CONNGUARD_LOG": "/nonexistent-dir/cg-%p.log"})
    check(got == "bss_present=1", "the page check does not see a written page", got=got)
