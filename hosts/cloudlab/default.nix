# The CloudLab c220g5: imports and host facts. Storage, network, monitoring, secrets,
# database, backups and the GPU are declared in modules/ and switched on here.
#
# Before the first install, replace the PLACEHOLDER values below with this machine's
# (docs/host.md "First install" says where to read each one).
{ config, ... }:

{
  imports = [
    ./hardware.nix
    ./disko.nix
  ];

  networking.hostName = "cloudlab";
  emily.node = "cloudlab";

  emily.storage = {
    enable = true;
    hostId = "6ad2ba1c"; # generated once for this host
    ramGiB = 128;
    # PLACEHOLDER by-id paths: `ls -l /dev/disk/by-id/` on the machine.
    hdds = [
      "/dev/disk/by-id/PLACEHOLDER-hdd-0"
      "/dev/disk/by-id/PLACEHOLDER-hdd-1"
      "/dev/disk/by-id/PLACEHOLDER-hdd-2"
      "/dev/disk/by-id/PLACEHOLDER-hdd-3"
    ];
    nvmes = [
      "/dev/disk/by-id/PLACEHOLDER-nvme-0"
      "/dev/disk/by-id/PLACEHOLDER-nvme-1"
    ];
  };

  emily.network = {
    enable = true;
    # PLACEHOLDER: the NIC on the switch's trunk port (`ip -br link`).
    uplink = "eno1";
    bandwidthMbit = 1000;
    rttMs = 100;
    wireguard.peers = [
      # {
      #   publicKey = "<admin laptop's `wg pubkey`>";
      #   allowedIPs = [ "10.99.0.2/32" ];
      # }
    ];
  };
  # the uplink itself gets its address from the site's DHCP
  networking.useDHCP = false;
  networking.interfaces.${config.emily.network.uplink}.useDHCP = true;

  emily.monitoring.enable = true;
  emily.secrets.enable = true;
  emily.database.enable = true;
  emily.backup = {
    enable = true;
    # MinIO on the storage VLAN; or an offsite bucket: "s3:https://<endpoint>/<bucket>"
    repository = "s3:http://10.30.0.10:9000/emily-backup";
  };
  emily.gpu.enable = true;

  emily.server = {
    enable = true;
    # PLACEHOLDER: your own public key (`cat ~/.ssh/id_ed25519.pub`); users are not
    # mutable, so this is the only way in.
    rootKeys = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERPLACEHOLDERPLACEHOLDERPLACEHOL admin" ];
  };

  # The bus: zenohd on mutual TLS with access control (certificates from sops, made by
  # ./bus-certs.sh). For a second host, list its router's WireGuard address here and
  # point cognition's memoryNode/inferenceNode at it (docs/host.md "Two hosts").
  emily.zenohd = {
    enable = true;
    mesh.peers = [ ];
  };

  services.emily.memory.enable = true;

  services.emily.inference = {
    enable = true;
    # every layer on the P4 (8 GB): a 3-4B instruct model at Q4_K_M fits with its
    # context; pulled once into the state directory (docs/host.md "The model")
    gpuLayers = -1;
    modelPath = "/var/lib/emily/inference/models/gemma-3-4b-it-Q4_K_M.gguf";
    contextLength = 8192;
  };

  services.emily.perception = {
    enable = true;
    # Whisper on the P4; Pascal has no fast fp16, so int8. The packaged tiny.en until a
    # larger CTranslate2 model directory is set with modelDir (docs/host.md)
    device = "cuda";
    computeType = "int8";
  };

  services.emily.cognition.enable = true;

  time.timeZone = "UTC";
  i18n.defaultLocale = "en_US.UTF-8";

  system.stateVersion = "26.05";
}
