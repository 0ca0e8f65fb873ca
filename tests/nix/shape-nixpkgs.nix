# Stand-in for nixpkgs in tests/nix/test_flake.py's shape test only: it lets the flake's
# outputs evaluate far enough to list their attribute names on a machine without
# nixpkgs. Nothing is built from it, and no package value is ever forced.
_args: {
  nixfmt = "nixfmt";
  emily = "emily";
}
