# systemd memory sizes ("512M", "8G") as bytes, a pure helper (builtins only) so that the
# service modules can assert MemoryHigh <= MemoryMax; tested in tests/nix/resources_test.nix.
rec {
  units = {
    "" = 1;
    K = 1024;
    M = 1024 * 1024;
    G = 1024 * 1024 * 1024;
    T = 1024 * 1024 * 1024 * 1024;
  };

  # "8G" -> 8589934592; anything else than digits with an optional K/M/G/T is an error
  bytes =
    size:
    let
      m = builtins.match "([0-9]+)([KMGT]?)" size;
    in
    if m == null then
      throw "memory size '${size}' must be digits with an optional K, M, G or T suffix (systemd's form)"
    else
      builtins.fromJSON (builtins.head m) * units.${builtins.elemAt m 1};
}
