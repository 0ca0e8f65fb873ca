let
  targets = import ../../modules/monitoring/targets.nix;
  all = enable: {
    memory = {
      inherit enable;
      metricsPort = 9461;
      port = 8463;
    };
    inference = {
      inherit enable;
      port = 8461;
    };
    cognition = {
      inherit enable;
      port = 8462;
    };
    perception = {
      inherit enable;
      metricsPort = 9463;
    };
  };
  onlyCognition = all false // {
    cognition = {
      enable = true;
      port = 8462;
    };
  };
in
[
  {
    name = "every service enabled: a job and a probe each";
    expr = targets (all true);
    expected = {
      scrape = {
        emily-memory = 9461;
        emily-inference = 8461;
        emily-cognition = 8462;
        emily-perception = 9463;
      };
      probes = [
        "http://127.0.0.1:8461/healthz"
        "http://127.0.0.1:8462/healthz"
        "http://127.0.0.1:8463/healthz"
        "http://127.0.0.1:9463/metrics"
      ];
    };
  }
  {
    name = "cognition alone (the other host runs memory and inference)";
    expr = targets onlyCognition;
    expected = {
      scrape = {
        emily-cognition = 8462;
      };
      probes = [ "http://127.0.0.1:8462/healthz" ];
    };
  }
  {
    name = "a host without the perception module: it counts as disabled";
    expr = targets (removeAttrs (all true) [ "perception" ]);
    expected = {
      scrape = {
        emily-memory = 9461;
        emily-inference = 8461;
        emily-cognition = 8462;
      };
      probes = [
        "http://127.0.0.1:8461/healthz"
        "http://127.0.0.1:8462/healthz"
        "http://127.0.0.1:8463/healthz"
      ];
    };
  }
  {
    name = "no service: nothing to scrape or probe";
    expr = targets (all false);
    expected = {
      scrape = { };
      probes = [ ];
    };
  }
  {
    name = "memory with its HTTP API off: its /metrics is probed instead";
    expr =
      (targets (
        all false
        // {
          memory = {
            enable = true;
            metricsPort = 9461;
            port = 0;
          };
        }
      )).probes;
    expected = [ "http://127.0.0.1:9461/metrics" ];
  }
]
