# Pure helpers over python/pyproject.toml: no nixpkgs, only builtins, so they are
# evaluated with `nix eval` in `make test` on machines without a Nix store.
#
# The flake derives the package's Nix dependencies from pyproject.toml through these,
# so the two lists cannot drift apart.
let
  # PEP 508: name, optional [extras], then version specifiers and markers.
  # Captures: 1 = name, 3 = extras (comma-separated, may be null).
  requirementRegex = "[[:space:]]*([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)[[:space:]]*(\\[([A-Za-z0-9_., -]*)])?.*";

  letters = abc: builtins.genList (i: builtins.substring i 1 abc) 26;
  upperCase = letters "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  lowerCase = letters "abcdefghijklmnopqrstuvwxyz";
  lower = builtins.replaceStrings upperCase lowerCase;

  # PEP 503 normalisation: lowercase, runs of "-", "_", "." become one "-".
  normalizeName =
    name:
    let
      dashed =
        builtins.replaceStrings
          [
            "_"
            "."
          ]
          [
            "-"
            "-"
          ]
          (lower name);
      squash =
        s:
        if builtins.match ".*--.*" s == null then
          s
        else
          squash (builtins.replaceStrings [ "--" ] [ "-" ] s);
    in
    squash dashed;

  trim =
    s:
    let
      m = builtins.match "[[:space:]]*([^[:space:]]*)[[:space:]]*" s;
    in
    if m == null then s else builtins.head m;

  parseRequirement =
    req:
    let
      m = builtins.match requirementRegex req;
      extrasRaw = builtins.elemAt m 3;
      extras =
        if extrasRaw == null then
          [ ]
        else
          builtins.filter (e: e != "") (
            map trim (builtins.filter builtins.isString (builtins.split "," extrasRaw))
          );
    in
    if m == null then
      throw "not a PEP 508 requirement: ${req}"
    else
      {
        name = normalizeName (builtins.head m);
        extras = map normalizeName extras;
      };

  readPyproject = path: builtins.fromTOML (builtins.readFile path);
in
{
  inherit normalizeName parseRequirement readPyproject;

  # { name, version, dependencies = [ { name; extras; } ]; optional = { extra = [ ... ]; }; }
  projectInfo =
    path:
    let
      project = (readPyproject path).project;
    in
    {
      inherit (project) name version;
      dependencies = map parseRequirement (project.dependencies or [ ]);
      optional = builtins.mapAttrs (_: map parseRequirement) (
        project.optional-dependencies or { }
      );
      scripts = project.scripts or { };
    };

  # Python packages (from a nixpkgs python package set `ps`) for a list of parsed
  # requirements, adding each requested extra's `optional-dependencies` where nixpkgs
  # declares it (e.g. psycopg's `pool`); extras nixpkgs lacks (psycopg's `binary`,
  # a wheel-only build) contribute nothing.
  toPythonPackages =
    ps: reqs:
    builtins.concatLists (
      map (
        r:
        [ ps.${r.name} ]
        ++ builtins.concatLists (
          map (e: (ps.${r.name}.optional-dependencies or { }).${e} or [ ]) r.extras
        )
      ) reqs
    );
}
