"""Build the optional C extension ``vigil._speedups`` (everything else is in pyproject.toml).

``optional=True``: a machine without a C compiler or Python headers still installs Vigil, which
then runs the pure Python code (CI sets VIGIL_REQUIRE_SPEEDUPS=1 to notice a failed build).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vigil._speedups",
            sources=["src/vigil/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
        Extension(
            "vigil._candidates",
            sources=["src/vigil/_candidates.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
    ]
)
