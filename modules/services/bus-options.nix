# Options every Emily service shares: where it sits on the bus. Not a module: each
# service module merges `busOptions "<service>"` into its own option set.
{ lib, config }:

service: {
  node = lib.mkOption {
    type = lib.types.strMatching "[A-Za-z0-9_.-]+";
    default = config.emily.node;
    defaultText = lib.literalExpression "config.emily.node";
    description = "Key chunk naming this host on the bus (`emily/<node>/${service}/...`).";
  };

  router = lib.mkOption {
    type = lib.types.str;
    default = "tcp/127.0.0.1:${toString config.emily.zenohd.port}";
    defaultText = lib.literalExpression ''"tcp/127.0.0.1:''${toString config.emily.zenohd.port}"'';
    description = "Zenoh endpoint of the host's zenohd router; the service is its client.";
  };
}
