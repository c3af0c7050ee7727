# CPython's own test suite without and with the shim, same outcome for every case
# (tests/integration/test_transparency_cpython.py). `make check` runs its subset (test_socket,
# test_subprocess, test_selectors, test_httplib, test_ssl, test_asyncio.test_sock_lowlevel);
# `make check-cpython` the full set (adds test_asyncio, test_os, test_signal, test_threading,
# the poll/select/epoll modules, test_urllib2_localnet, test_socketserver...): ~3.5 minutes for both runs on a quiet machine here.
.PHONY: check-cpython
check-cpython: all
	@scripts/deps.sh test
	@CG_CPYTHON=full BUILD=$(BUILD) $(PYTHON) tests/integration/run.py test_transparency_cpython
