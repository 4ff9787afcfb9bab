"""Written by scripts/codegen.sh: the top-level packages it generated from protos/."""

PACKAGES = ("meshadapter", "octospine", "openframe", )
