let
  r = import ../../modules/lib/resources.nix;
in
[
  {
    name = "8G in bytes";
    expr = r.bytes "8G";
    expected = 8589934592;
  }
  {
    name = "512M in bytes";
    expr = r.bytes "512M";
    expected = 536870912;
  }
  {
    name = "plain bytes";
    expr = r.bytes "4096";
    expected = 4096;
  }
  {
    name = "a percentage or a lower-case unit is rejected";
    expr = map (s: (builtins.tryEval (r.bytes s)).success) [
      "50%"
      "8g"
      "G"
    ];
    expected = [
      false
      false
      false
    ];
  }
]
