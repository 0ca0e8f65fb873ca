# Runs every `*_test.nix` beside this file and returns the failing cases ([] = all pass).
# Each test file evaluates to a list of { name; expr; expected; }.
# Used by `make test` (nix-instantiate --eval) and by the flake's `nix-helpers` check.
let
  dir = ./.;
  files = builtins.filter (n: builtins.match ".*_test\\.nix" n != null) (
    builtins.attrNames (builtins.readDir dir)
  );
  cases = builtins.concatLists (
    map (f: map (c: c // { file = f; }) (import (dir + "/${f}"))) files
  );
in
map (c: {
  inherit (c) file name expected;
  got = c.expr;
}) (builtins.filter (c: c.expr != c.expected) cases)
