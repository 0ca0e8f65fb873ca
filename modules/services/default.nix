# The Emily services and the Zenoh router they talk through, one module each.
{
  imports = [
    ./zenohd.nix
    ./memory.nix
    ./inference.nix
    ./cognition.nix
    ./perception.nix
  ];
}
