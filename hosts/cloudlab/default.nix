# The CloudLab c220g5: imports and host facts. Storage, network, monitoring, secrets,
# database, backups and the GPU are declared in modules/ and switched on here.
{ ... }:

{
  imports = [ ./hardware.nix ];

  networking.hostName = "cloudlab";
  emily.node = "cloudlab";

  time.timeZone = "UTC";
  i18n.defaultLocale = "en_US.UTF-8";

  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };

  nix.settings = {
    experimental-features = [
      "nix-command"
      "flakes"
    ];
    trusted-users = [ "root" ];
  };

  system.stateVersion = "26.05";
}
