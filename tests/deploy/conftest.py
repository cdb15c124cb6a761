"""The deployment tier: the real images and compose files under a real Docker engine.

Under ``CI=true`` a machine without an engine (or Compose v2) fails the tier; elsewhere it is
skipped, saying why. The public images are pulled, or built as local stand-ins
(ops/standins/build) where no registry answers; cca's image is built once per run."""

from __future__ import annotations

import os

import pytest

from tests.support.compose import Built, build_cca_image, engine_missing, ensure_public_images


@pytest.fixture(scope="session")
def cca_image() -> Built:
    why = engine_missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the deployment tier cannot run: {why}")
        pytest.skip(f"DEPLOYMENT TIER NOT RUN: {why}")
    had = ensure_public_images()
    built = build_cca_image()
    print(f"\ndeploy: public images {had}; {built.image} built in {built.seconds:.0f} s, "
          f"{built.size_mb:.0f} MB")
    return built
