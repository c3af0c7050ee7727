"""Signal handlers that open, dup2 and close fds while threads connect."""
import cglib
from cglib import check
from stresslib import client, run_pair, summary


def test_signal_noise_during_connects():
    # 16 threads, blocking and poll connects in turn, SIGUSR1 (SA_RESTART) every 100 us whose
    # handler opens, dup2()s and closes fds. Same results as without the shim: in particular
    # no EINTR from a blocking connect (the kernel restarts it for SA_RESTART handlers).
    port = cglib.free_port()
    p, logs, base, shim = run_pair([client("stress_signal"), "noise", "16", "20", str(port)], {})
    check(base == {"block:ECONNREFUSED": 160, "poll:ECONNREFUSED": 160}, "base run", got=base)
    want = {("connect_failed", "retry", "ECONNREFUSED", 1): 320,
            ("connect_failed", "retry", "ECONNREFUSED", 2): 320,
            ("connect_failed", "give_up", "ECONNREFUSED", 3): 320}
    recs = logs.all_records()
    check(summary(recs) == want, "records", got=summary(recs))
    logs.remove()


def test_handler_replaces_connecting_fd():
    # The alarm()-style timeout: 30 ms into a blocking connect a timer's handler dup2()s a UDP
    # socket over the connecting fd. The shim is in its 500 ms backoff then: it must give up
    # with the refusal the program would have seen, and never connect the UDP socket.
    port = cglib.free_port()
    p, logs, base, shim = run_pair([client("stress_signal"), "close", "8", "3", str(port)],
                                   {"CONNGUARD_BACKOFF_MS": "500"})
    check(base == {"connect=ECONNREFUSED:fired=1:type=dgram:peer=ENOTCONN": 24}, "base run", got=base)
    want = {("connect_failed", "retry", "ECONNREFUSED", 1): 24,
            ("connect_failed", "give_up", "ECONNREFUSED", 1): 24}
    recs = logs.all_records()
    check(summary(recs) == want, "records", got=summary(recs))
    check(all(r["reason"] == "fd_closed" for r in recs if r.get("action") == "give_up"), "give-up reason",
          got=[r for r in recs if r.get("action") == "give_up"][:2])
    logs.remove()
