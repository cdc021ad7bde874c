"""Optional packages (the extras in pyproject.toml): checks that name the fix before any work starts."""

from __future__ import annotations

from prompts import ShopLoRAError


def require_sklearn(needed_for: str, otherwise: str = "") -> None:
    """Refuse early when scikit-learn (the `baselines` extra) is missing. `needed_for` names what needs it;
    `otherwise` adds a way around it, e.g. ", or leave tfidf out of methods"."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ShopLoRAError(
            f"{needed_for} needs scikit-learn, which is not installed: pip install scikit-learn (or "
            f"pip install -e '.[baselines]'){otherwise}"
        ) from None
