# Settings -> the environment variables emily.config reads (`EMILY_<SECTION>__<FIELD>`),
# a pure helper (builtins only), tested with `nix eval` and then parsed by the real
# Python loader (tests/nix/test_settings.py).
#
# emily.config's `_coerce` parses booleans from "true"/"false", numbers with int()/float(),
# tuples from a JSON list, and an empty string as None for optional fields. `toString`
# would render `false` as "" and 0.5 as "0.500000", so every value goes through `value`.
rec {
  letters = abc: builtins.genList (i: builtins.substring i 1 abc) 26;
  upper = builtins.replaceStrings (letters "abcdefghijklmnopqrstuvwxyz") (
    letters "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  );

  # One setting as the string emily.config parses back into the same value.
  value =
    v:
    if builtins.isBool v then
      (if v then "true" else "false")
    else if builtins.isInt v || builtins.isFloat v then
      builtins.toJSON v
    else if builtins.isString v then
      v
    else if builtins.isPath v then
      toString v
    else if v == null then
      ""
    else if builtins.isList v then
      builtins.toJSON (map (x: if builtins.isPath x then toString x else x) v)
    else
      throw "emily settings: cannot render a ${builtins.typeOf v} (${builtins.toJSON v}); use a bool, number, string, path, null or list";

  # { field = value; } of section `section` -> { EMILY_<SECTION>__<FIELD> = "..."; }
  env =
    section: settings:
    builtins.listToAttrs (
      map (
        k:
        if builtins.match "[a-z][a-z0-9_]*" k == null then
          throw "emily settings: [${section}] key '${k}' must be lower_snake_case (a field of emily.config)"
        else
          {
            name = "EMILY_${upper section}__${upper k}";
            value = value settings.${k};
          }
      ) (builtins.attrNames settings)
    );

  # The environment of an Emily service unit: `[bus]` as a client of the host's router
  # (with the TLS files when `tls` is given) and the service's own section.
  serviceEnv =
    {
      service,
      node,
      router,
      tls ? null,
      settings ? { },
    }:
    env "bus" (
      {
        mode = "client";
        inherit node;
        connect = [ router ];
        listen = [ ];
      }
      // (
        if tls == null then
          { }
        else
          {
            tls_root_ca = tls.rootCa;
            tls_certificate = tls.certificate;
            tls_private_key = tls.privateKey;
          }
      )
    )
    // env service settings;
}
