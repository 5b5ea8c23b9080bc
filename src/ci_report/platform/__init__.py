"""The platform side: what a platform that starts Jenkins builds runs.

- :mod:`.jenkins`: the Jenkins remote API client (crumb, trigger, queue items, builds, artifacts);
- :mod:`.trigger`: trigger a job and know its build number, optionally wait for the result;
- :mod:`.sync`: recover the result of a build whose callback never arrived;
- :mod:`.receiver`: the reference receiver (verify, dedupe, store) behind ``ci-report receiver``.

``ci_report.verify`` stays a stand-alone module so that a platform can verify callbacks without
click or requests.
"""
