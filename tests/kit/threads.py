"""Calling one function from several threads at once, for the tests that
check an interpreter fits once under concurrent requests."""

import threading


def call_in_threads(fn, n=4):
    """Runs fn() in n threads started together; returns (results, errors)."""
    results, errors = [], []

    def work():
        try:
            results.append(fn())
        except Exception as e:  # pylint: disable=broad-except
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors
