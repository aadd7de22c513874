"""The test kit: what several test modules need, once.

* `tiny_models`: tiny random HF classifiers built from configs (no downloads),
  and `classifier(...)` wrapping one as an `HFSequenceClassifier`.
* `fake_models`: minimal LIT models for compatibility checks.
* `demo_server`: start the demo server on a free port, call LIT's HTTP API.
* `threads`: run a callable from many threads at once.
* `browser`: launch Debian's Chromium through Playwright.
"""
