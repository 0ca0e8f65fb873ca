# Secrets: sops-nix with age. On the host, the age identity is derived from the SSH
# ed25519 host key; VM tests point `ageKeyFile` at the committed test-only key.
# This module is the one place that maps sops secrets to the other modules' file
# options (WireGuard key, Postgres password, Grafana, Alertmanager SMTP, restic, the bus
# certificates of zenohd and of each Emily service), and
# names the units each secret restarts when it changes (`restartUnits`).
# It needs sops-nix's module (the flake adds it); without it, enabling it asserts.
{
  config,
  lib,
  options,
  ...
}:

let
  cfg = config.emily.secrets;
  e = config.emily;
  secret = name: config.sops.secrets.${name}.path;
  ph = name: config.sops.placeholder.${name};
  serviceNames = [
    "memory"
    "inference"
    "perception"
    "cognition"
  ];
  services = lib.filter (
    s: e.zenohd.tls.enable && config.services.emily.${s}.enable
  ) serviceNames;
  unitsOf = map (s: "emily-${s}.service") services;
  router = "zenoh/router-${e.node}";
in
{
  options.emily.secrets = {
    enable = lib.mkEnableOption "sops-nix secrets for the Emily modules";

    sopsFile = lib.mkOption {
      type = lib.types.path;
      default = ../secrets/cloudlab.yaml;
      description = "The sops-encrypted YAML holding the host's secrets.";
    };

    ageKeyFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        An age identity file, outside the Nix store. Null (the host): derive the identity
        from /etc/ssh/ssh_host_ed25519_key. VM tests set it to a copy of
        secrets/test-only-age-key.txt.
      '';
    };
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = !cfg.enable || options ? sops;
          message = "emily.secrets needs sops-nix: add sops-nix.nixosModules.sops to the system's modules.";
        }
      ];
    }
    (lib.optionalAttrs (options ? sops) (
      lib.mkIf cfg.enable (
        lib.mkMerge [
          {
            sops = {
              defaultSopsFile = cfg.sopsFile;
              age = {
                keyFile = cfg.ageKeyFile;
                sshKeyPaths = lib.mkIf (cfg.ageKeyFile == null) [ "/etc/ssh/ssh_host_ed25519_key" ];
              };
            };
          }
          (lib.mkIf e.network.enable {
            sops.secrets."wireguard/private-key".restartUnits = [ "wireguard-wg0.service" ];
            emily.network.wireguard.privateKeyFile = secret "wireguard/private-key";
          })
          (lib.mkIf e.database.enable {
            sops.secrets."postgres/emily-password" = {
              owner = "postgres";
              restartUnits = [ "emily-postgres-passwords.service" ];
            };
            emily.database.passwordFile = secret "postgres/emily-password";
          })
          (lib.mkIf e.monitoring.enable {
            sops.secrets = {
              "grafana/admin-password" = {
                owner = "grafana";
                restartUnits = [ "grafana.service" ];
              };
              "grafana/secret-key" = {
                owner = "grafana";
                restartUnits = [ "grafana.service" ];
              };
              "alertmanager/smtp-username" = { };
              "alertmanager/smtp-password" = { };
            };
            sops.templates."alertmanager.env" = {
              content = ''
                SMTP_AUTH_USERNAME=${ph "alertmanager/smtp-username"}
                SMTP_AUTH_PASSWORD=${ph "alertmanager/smtp-password"}
              '';
              restartUnits = [ "alertmanager.service" ];
            };
            emily.monitoring = {
              grafana.adminPasswordFile = secret "grafana/admin-password";
              grafana.secretKeyFile = secret "grafana/secret-key";
              alertmanagerEnvironmentFile = config.sops.templates."alertmanager.env".path;
            };
          })
          # The bus (hosts/cloudlab/bus-certs.sh writes these): the CA certificate is
          # public; each key is readable only by the unit that presents it.
          (lib.mkIf (e.zenohd.tls.enable && (e.zenohd.enable || services != [ ])) {
            sops.secrets."zenoh/ca-certificate" = {
              mode = "0444";
              restartUnits = lib.optional e.zenohd.enable "zenohd.service" ++ unitsOf;
            };
          })
          (lib.mkIf (e.zenohd.enable && e.zenohd.tls.enable) {
            sops.secrets = {
              "${router}/certificate" = {
                owner = "zenohd";
                restartUnits = [ "zenohd.service" ];
              };
              "${router}/private-key" = {
                owner = "zenohd";
                restartUnits = [ "zenohd.service" ];
              };
              # the command-line client's (CN=cli), for root: `emily observe` on the host
              "zenoh/cli/certificate" = { };
              "zenoh/cli/private-key" = { };
            };
            emily.zenohd.tls = {
              rootCa = secret "zenoh/ca-certificate";
              certificate = secret "${router}/certificate";
              privateKey = secret "${router}/private-key";
            };
          })
          {
            sops.secrets = lib.listToAttrs (
              lib.concatMap (
                s:
                map
                  (part: {
                    name = "zenoh/${s}/${part}";
                    value = {
                      owner = config.services.emily.${s}.user;
                      restartUnits = [ "emily-${s}.service" ];
                    };
                  })
                  [
                    "certificate"
                    "private-key"
                  ]
              ) services
            );
            # static names: the conditions live in the values (no recursion through
            # services.emily.<s>.enable)
            services.emily = lib.genAttrs serviceNames (
              s:
              lib.mkIf (builtins.elem s services) {
                tls = {
                  certificate = secret "zenoh/${s}/certificate";
                  privateKey = secret "zenoh/${s}/private-key";
                };
              }
            );
          }
          (lib.mkIf e.backup.enable {
            sops.secrets = {
              "restic/password" = { };
              "restic/s3-access-key-id" = { };
              "restic/s3-secret-access-key" = { };
            };
            sops.templates."restic-s3.env".content = ''
              AWS_ACCESS_KEY_ID=${ph "restic/s3-access-key-id"}
              AWS_SECRET_ACCESS_KEY=${ph "restic/s3-secret-access-key"}
            '';
            emily.backup = {
              passwordFile = secret "restic/password";
              environmentFile = config.sops.templates."restic-s3.env".path;
            };
          })
        ]
      )
    ))
  ];
}
