# nixosModules.default: every Emily module. Each file is one concern with options under
# `emily.<concern>`; importing this changes nothing until those options are set.
{
  imports = [
    ./base.nix
    ./server.nix
    ./storage
    ./network
    ./monitoring
    ./secrets.nix
    ./database.nix
    ./backup.nix
    ./gpu.nix
    ./services
  ];
}
