"""ci-report: report Jenkins build results to the platform that started them."""

__version__ = "0.1.0"
USER_AGENT = f"ci-report/{__version__}"

__all__ = ["USER_AGENT", "__version__"]
