# emily.server: what a remote, headless machine needs so that it keeps running and stays
# reachable (after srvos' nixos/server and nixos/common): a runtime watchdog, no
# emergency mode, declared users only with root's SSH keys, key-only SSH, and a Nix
# store that is collected and deduplicated on a schedule.
{ config, lib, ... }:

let
  cfg = config.emily.server;
  placeholder = lib.any (lib.hasInfix "PLACEHOLDER") cfg.rootKeys;
  placeholderWarning = "emily.server.rootKeys still holds a PLACEHOLDER key: put your own public key there before deploying.";
in
{
  options.emily.server = {
    enable = lib.mkEnableOption "the defaults of a remote headless server";

    rootKeys = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "ssh-ed25519 AAAAC3Nza... admin@laptop" ];
      description = ''
        SSH public keys that may log in as root. Users are not mutable, so these are the
        only way in: at least one is required.
      '';
    };

    gcOlderThan = lib.mkOption {
      type = lib.types.strMatching "[0-9]+d";
      default = "30d";
      description = "Store paths of generations older than this are collected weekly (also the rollback window).";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.rootKeys != [ ];
        message = "emily.server.rootKeys is empty: with users.mutableUsers = false and key-only SSH nobody could log in.";
      }
    ];
    warnings = lib.optional placeholder placeholderWarning;

    users.mutableUsers = false;
    users.users.root.openssh.authorizedKeys.keys = cfg.rootKeys;

    services.openssh = {
      enable = true;
      settings = {
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
        PermitRootLogin = "prohibit-password";
      };
    };

    systemd = {
      # headless: a machine stuck in emergency mode cannot be reached; keep booting
      enableEmergencyMode = false;
      settings.Manager = {
        # the hardware watchdog reboots the machine if systemd stops answering for 15 s
        RuntimeWatchdogSec = lib.mkDefault "15s";
        RebootWatchdogSec = lib.mkDefault "30s";
      };
    };

    nix = {
      settings = {
        experimental-features = [
          "nix-command"
          "flakes"
        ];
        trusted-users = [ "root" ];
      };
      gc = {
        automatic = true;
        dates = "weekly";
        options = "--delete-older-than ${cfg.gcOlderThan}";
      };
      optimise.automatic = true;
    };
  };
}
