# modules/services/bus-options.nix, evaluated with a minimal stand-in for nixpkgs' lib
# (mkOption returns its attribute set), so the defaults can be checked without nixpkgs.
let
  stubLib = {
    mkOption = o: o;
    literalExpression = t: t;
    types = {
      str = "str";
      strMatching = r: "strMatching ${r}";
    };
  };
  config = {
    emily.node = "cloudlab";
    emily.zenohd.port = 7447;
  };
  opts = import ../../modules/services/bus-options.nix {
    lib = stubLib;
    inherit config;
  } "memory";
in
[
  {
    name = "node defaults to emily.node";
    expr = opts.node.default;
    expected = "cloudlab";
  }
  {
    name = "router defaults to the local zenohd";
    expr = opts.router.default;
    expected = "tcp/127.0.0.1:7447";
  }
  {
    name = "the node description names the service's keys";
    expr = builtins.match ".*emily/<node>/memory/.*" opts.node.description != null;
    expected = true;
  }
]
