let
  h = import ../../services/lib/pyproject.nix;
  info = h.projectInfo ../../python/pyproject.toml;
in
[
  {
    name = "normalize lowercases and folds separators";
    expr = h.normalizeName "Foo__Bar.baz-Qux";
    expected = "foo-bar-baz-qux";
  }
  {
    name = "requirement with extras and specifier";
    expr = h.parseRequirement "psycopg[binary,pool]>=3.2";
    expected = {
      name = "psycopg";
      extras = [
        "binary"
        "pool"
      ];
    };
  }
  {
    name = "requirement with spaces and a marker";
    expr = h.parseRequirement "  Typing_Extensions [ x ] ; python_version < '3.12'";
    expected = {
      name = "typing-extensions";
      extras = [ "x" ];
    };
  }
  {
    name = "bare name";
    expr = h.parseRequirement "numpy";
    expected = {
      name = "numpy";
      extras = [ ];
    };
  }
  {
    name = "project name and script come from pyproject.toml";
    expr = {
      inherit (info) name;
      script = info.scripts.emily;
    };
    expected = {
      name = "emily";
      script = "emily.cli.main:main";
    };
  }
  {
    name = "extras are resolved through a package set's optional-dependencies";
    expr =
      h.toPythonPackages
        {
          psycopg = {
            n = "psycopg";
            optional-dependencies.pool = [ { n = "psycopg-pool"; } ];
          };
          torch = {
            n = "torch";
          };
        }
        (
          map h.parseRequirement [
            "psycopg[binary,pool]"
            "torch>=2"
          ]
        );
    expected = [
      {
        n = "psycopg";
        optional-dependencies.pool = [ { n = "psycopg-pool"; } ];
      }
      { n = "psycopg-pool"; }
      { n = "torch"; }
    ];
  }
]
