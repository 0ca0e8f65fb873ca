let
  z = import ../../modules/lib/zenohd-config.nix;
  tls = {
    rootCa = "/run/secrets/zenoh/ca-certificate";
    certificate = "/run/secrets/zenoh/router-a/certificate";
    privateKey = "/run/secrets/zenoh/router-a/private-key";
  };
  fails = args: !(builtins.tryEval (builtins.deepSeq (z.settings (tls // args)) null)).success;
  s = z.settings (
    tls
    // {
      listen = [ "tls/127.0.0.1:7447" ];
      connect = [ "tls/10.99.0.2:7447" ];
    }
  );
in
[
  {
    name = "the endpoints come from Nix";
    expr = {
      inherit (s) listen connect;
    };
    expected = {
      listen.endpoints = [ "tls/127.0.0.1:7447" ];
      connect.endpoints = [ "tls/10.99.0.2:7447" ];
    };
  }
  {
    name = "the router presents its certificate on both sides of a link";
    expr = {
      inherit (s.transport.link.tls)
        root_ca_certificate
        listen_certificate
        connect_private_key
        enable_mtls
        ;
    };
    expected = {
      root_ca_certificate = tls.rootCa;
      listen_certificate = tls.certificate;
      connect_private_key = tls.privateKey;
      enable_mtls = true;
    };
  }
  {
    name = "access control from the data file: on, deny by default";
    expr = {
      inherit (s.access_control) enabled default_permission;
    };
    expected = {
      enabled = true;
      default_permission = "deny";
    };
  }
  {
    name = "a plain tcp endpoint is refused";
    expr = fails { listen = [ "tcp/0.0.0.0:7447" ]; };
    expected = true;
  }
  {
    name = "no listen endpoint is refused";
    expr = fails { listen = [ ]; };
    expected = true;
  }
]
