# zenohd's settings from the data file modules/services/zenohd.json5 (a pure helper,
# builtins only): full-line `//` comments are dropped and the rest parsed as JSON; only
# the endpoints and the certificate paths are set from Nix. tests/host/test_zenohd.py
# starts a Zenoh router with what this returns.
rec {
  # JSON5 restricted to JSON plus full-line comments -> a Nix value
  readJson5 =
    file:
    let
      lines = builtins.filter builtins.isString (builtins.split "\n" (builtins.readFile file));
      kept = builtins.filter (l: builtins.match "[[:space:]]*//.*" l == null) lines;
    in
    builtins.fromJSON (builtins.concatStringsSep "\n" kept);

  # listen, connect: Zenoh endpoints (`tls/<address>:<port>`); rootCa, certificate,
  # privateKey: PEM files of the CA and of this router's certificate and key.
  settings =
    {
      file ? ../services/zenohd.json5,
      listen,
      connect ? [ ],
      rootCa,
      certificate,
      privateKey,
    }:
    let
      base = readJson5 file;
      bad = builtins.filter (e: builtins.match "tls/.+:[0-9]+" e == null) (listen ++ connect);
    in
    if listen == [ ] then
      throw "zenohd: no listen endpoint"
    else if bad != [ ] then
      throw "zenohd: every link is mutually authenticated TLS; not tls/<address>:<port>: ${builtins.toJSON bad}"
    else
      base
      // {
        listen = base.listen // {
          endpoints = listen;
        };
        connect = base.connect // {
          endpoints = connect;
        };
        transport = base.transport // {
          link = base.transport.link // {
            tls = base.transport.link.tls // {
              root_ca_certificate = rootCa;
              listen_certificate = certificate;
              listen_private_key = privateKey;
              connect_certificate = certificate;
              connect_private_key = privateKey;
            };
          };
        };
      };
}
