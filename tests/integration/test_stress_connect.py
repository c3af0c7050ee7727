"""32-thread connect storms against refused, late and SYN-dropping loopback listeners, through
blocking connect, poll, epoll and select. Each run is compared with the same run without the
shim (what every connect returned), and its per-process JSON log is read strictly with exact
record counts. A hang ends in the client's watchdog (SIGALRM) or the run's timeout."""
import cglib
import stresslib
from cglib import check
from stresslib import client, run_pair, summary

THREADS = 32


def _refused(mode, per):
    port = cglib.free_port()
    p, logs, base, shim = run_pair([client("stress_connect"), mode, str(THREADS), str(per), str(port), "5000"], {})
    n = THREADS * per
    check(base == {"ECONNREFUSED": n}, "without the shim every connect is refused", got=base)
    # RETRIES=2: two retry records and one give-up per connect, each naming ECONNREFUSED.
    want = {("connect_failed", "retry", "ECONNREFUSED", 1): n,
            ("connect_failed", "retry", "ECONNREFUSED", 2): n,
            ("connect_failed", "give_up", "ECONNREFUSED", 3): n}
    recs = logs.all_records()
    check(summary(recs) == want, "records", got=summary(recs))
    check(all(r.get("reason") == "retries_exhausted" for r in recs if r.get("action") == "give_up"),
          "give-up reason", got=[r for r in recs if r.get("action") == "give_up"][:3])
    check(len(logs.records()) == 1, "one process, one log file", got=logs.files())
    logs.remove()


def test_storm_refused_block():
    _refused("block", 4)


def test_storm_refused_poll():
    _refused("poll", 4)


def test_storm_refused_epoll():
    _refused("epoll", 4)


def test_storm_refused_select():
    _refused("select", 4)


def _syn_drop(mode):
    with cglib.FullBacklog() as fb:
        p, logs, base, shim = run_pair(
            [client("stress_connect"), mode, str(THREADS), "2", str(fb.port), str(int(700 * stresslib.SLOW))],
            {"CONNGUARD_CONNECT_TIMEOUT_MS": "100", "CONNGUARD_BACKOFF_MS": "20"})
    n = THREADS * 2
    check(base == {"timeout": n}, "without the shim every connect times out in the program's poll", got=base)
    # Attempts 1 and 2 are timed out by the shim and retried; the last one is left to the
    # program's own timer (no give-up record: the program never reads an error).
    want = {("connect_failed", "retry", "ETIMEDOUT", 1): n,
            ("connect_failed", "retry", "ETIMEDOUT", 2): n}
    recs = logs.all_records()
    check(summary(recs) == want, "records", got=summary(recs))
    logs.remove()


def test_storm_syn_drop_poll():
    _syn_drop("poll")


def test_storm_syn_drop_epoll():
    _syn_drop("epoll")


def test_storm_syn_drop_select():
    _syn_drop("select")


def test_storm_syn_drop_block_program_timeout():
    # The program's own SO_SNDTIMEO (600 ms) is longer than the shim's attempts (100 ms each,
    # RETRIES=2): the shim cuts and retries them and ends within the program's bound with the
    # errno the program alone sees at 600 ms, EINPROGRESS (test_connect_clients.
    # test_program_sndtimeo_longer_than_ours). Checked exactly for 32 threads.
    with cglib.FullBacklog() as fb:
        p, logs, base, shim = run_pair([client("stress_connect"), "block", str(THREADS), "1", str(fb.port),
                                        str(int(600 * stresslib.SLOW))],
                                       {"CONNGUARD_CONNECT_TIMEOUT_MS": "100"}, compare=False)
    check(base == {"EINPROGRESS": THREADS}, "program timeout", got=base)
    check(shim == base, "the errno the program's own timeout gives", got=shim)
    want = {("connect_failed", "retry", "ETIMEDOUT", 1): THREADS,
            ("connect_failed", "retry", "ETIMEDOUT", 2): THREADS,
            ("connect_failed", "give_up", "ETIMEDOUT", 3): THREADS}
    recs = logs.all_records()
    check(summary(recs) == want, "records", got=summary(recs))
    logs.remove()


def _late(mode):
    lst = stresslib.LateListener()
    logs = stresslib.LogDir()
    try:
        argv = [client("stress_connect"), mode, str(THREADS), "1", str(lst.port), str(int(10000 * stresslib.SLOW))]
        base = cglib.run(argv, preload=False, timeout=60)
        check(base.returncode == 0 and stresslib.results(base.out) == {"ECONNREFUSED": THREADS},
              "without the shim every connect is refused", got=base.out)
        backoff = str(int(2000 * stresslib.SLOW))
        env = dict(stresslib.FAST, CONNGUARD_BACKOFF_MS=backoff, CONNGUARD_BACKOFF_MAX_MS=backoff,
                   CONNGUARD_DEADLINE_MS="60000", CONNGUARD_RETRIES="3", CONNGUARD_LOG=logs.template)
        p = cglib.spawn(argv, env=env, preload=True, stdout=cglib.subprocess.PIPE, stderr=cglib.subprocess.PIPE)
        # Every thread's first attempt is refused and its retry waits 2 s: the listener
        # starts then, so every second attempt succeeds and the record counts are exact.
        logs.wait_for(lambda r: r.get("action") == "retry" and r.get("attempt") == 1, THREADS)
        lst.start()
        out, err = p.communicate(timeout=60)
        check(p.returncode == 0, "client failed under the shim", got=err)
        check(stresslib.results(out.decode()) == {"ok": THREADS}, "every connect recovers", got=out + err)
        recs = logs.all_records()
        want = {("connect_failed", "retry", "ECONNREFUSED", 1): THREADS, ("connect_recovered", None, None, 2): THREADS}
        check(summary(recs) == want, "records", got=summary(recs))
        logs.remove()
    finally:
        lst.close()


def test_storm_late_block():
    _late("block")


def test_storm_late_poll():
    _late("poll")


def test_storm_late_epoll():
    _late("epoll")
