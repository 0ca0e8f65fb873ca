let
  s = import ../../modules/lib/settings.nix;
in
[
  {
    name = "false is \"false\", not toString's empty string";
    expr = s.value false;
    expected = "false";
  }
  {
    name = "true is \"true\"";
    expr = s.value true;
    expected = "true";
  }
  {
    name = "a float keeps its digits (toString would give 0.500000)";
    expr = s.value 0.5;
    expected = "0.5";
  }
  {
    name = "an integer";
    expr = s.value 60;
    expected = "60";
  }
  {
    name = "a list is a JSON list";
    expr = s.value [
      "tls/127.0.0.1:7447"
      "tls/10.99.0.2:7447"
    ];
    expected = ''["tls/127.0.0.1:7447","tls/10.99.0.2:7447"]'';
  }
  {
    name = "an empty list";
    expr = s.value [ ];
    expected = "[]";
  }
  {
    name = "null is empty (None for optional fields)";
    expr = s.value null;
    expected = "";
  }
  {
    name = "env names the section and field in upper case";
    expr = s.env "cognition" {
      stochastic = false;
      recall_timeout_s = 0.5;
    };
    expected = {
      EMILY_COGNITION__STOCHASTIC = "false";
      EMILY_COGNITION__RECALL_TIMEOUT_S = "0.5";
    };
  }
  {
    name = "a key that is no field name is rejected";
    expr = (builtins.tryEval (builtins.deepSeq (s.env "bus" { "Mode-X" = "client"; }) null)).success;
    expected = false;
  }
  {
    name = "an attribute set is rejected";
    expr = (builtins.tryEval (s.value { a = 1; })).success;
    expected = false;
  }
]
