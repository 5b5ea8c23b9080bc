"""``load_requests`` imports requests without importlib.metadata and charset_normalizer, and
nothing of either is lost: whoever uses them later (urllib3's h2 check, requests' charset
detection, a plain import) gets the real modules."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_requests_loads_without_importlib_metadata() -> None:
    assert (
        run(
            """
            import sys
            from ci_report.http import load_requests, make_session
            load_requests()
            make_session().close()
            print(
                "importlib.metadata" in sys.modules,
                "charset_normalizer" in sys.modules,
                "idna" in sys.modules,
                "requests" in sys.modules,
            )
            """
        )
        == "False False False True"
    )


def test_importlib_metadata_is_the_real_one_afterwards() -> None:
    out = run(
        """
        import sys
        from ci_report.http import load_requests
        load_requests()
        import importlib.metadata, requests
        from importlib.metadata import PackageNotFoundError, version
        real = sys.modules["importlib.metadata"]
        same = version("requests") == requests.__version__
        print(type(real).__name__, importlib.metadata is real, same)
        """
    )
    assert out == "module True True"


def test_urllib3_h2_check_still_asks_the_real_module() -> None:
    out = run(
        """
        from ci_report.http import load_requests
        load_requests()
        import importlib.metadata, requests, urllib3.http2 as h2
        print(h2.version("requests") == requests.__version__)
        try:
            h2.version("no-such-distribution-ci-report")
        except importlib.metadata.PackageNotFoundError:
            print("not found")
        """
    )
    assert out == "True\nnot found"


def test_an_already_imported_importlib_metadata_is_left_alone() -> None:
    out = run(
        """
        import sys, importlib.metadata
        before = sys.modules["importlib.metadata"]
        from ci_report.http import load_requests
        load_requests()
        import urllib3.http2 as h2
        print(sys.modules["importlib.metadata"] is before, h2.version is before.version)
        """
    )
    assert out == "True True"


def test_charset_detection_and_version_are_the_real_ones() -> None:
    out = run(
        """
        import sys, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from ci_report.http import load_requests
            load_requests()
        import requests
        from requests.compat import chardet
        response = requests.Response()
        response._content = "résumé à la carte".encode("utf-8")
        response.headers["Content-Type"] = "application/octet-stream"  # no charset named
        text = response.text
        import charset_normalizer
        real = sys.modules["charset_normalizer"]
        print(
            [w.category.__name__ for w in caught],
            text == "résumé à la carte",
            chardet.detect(b"plain ascii")["encoding"] is not None,
            type(real).__name__,
            charset_normalizer is real,
            requests.__dict__.get("charset_normalizer_version") == real.__version__,
        )
        """
    )
    assert out == "[] True True module True True"


def test_an_already_imported_charset_normalizer_is_left_alone() -> None:
    out = run(
        """
        import sys, charset_normalizer
        from ci_report.http import load_requests
        load_requests()
        from requests.compat import chardet
        print(chardet is charset_normalizer)
        """
    )
    assert out == "True"


def test_a_non_ascii_host_is_still_idna_encoded() -> None:
    out = run(
        """
        import sys
        from ci_report.http import load_requests
        load_requests()
        import requests, requests.packages
        url = requests.Request("POST", "http://bücher.example/cb").prepare().url
        encoded = requests.packages.idna.encode("bücher").decode()
        print(url, encoded, type(sys.modules["idna"]).__name__)
        """
    )
    assert out == "http://xn--bcher-kva.example/cb xn--bcher-kva module"
