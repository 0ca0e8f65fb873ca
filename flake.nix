{
  description = "Emily Sovereign: the cloudlab research server (NixOS) and the emily Python services";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    sops-nix = {
      url = "github:Mic92/sops-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      sops-nix,
      disko,
    }:
    let
      system = "x86_64-linux";
      pkgs = import nixpkgs {
        inherit system;
        overlays = [ self.overlays.default ];
      };
    in
    {
      overlays.default = import ./services/overlay.nix;

      nixosModules.default = import ./modules;

      nixosConfigurations.cloudlab = nixpkgs.lib.nixosSystem {
        modules = [
          sops-nix.nixosModules.sops
          disko.nixosModules.disko
          self.nixosModules.default
          { nixpkgs.overlays = [ self.overlays.default ]; }
          ./hosts/cloudlab
        ];
      };

      packages.${system} = {
        emily = pkgs.emily;
        default = pkgs.emily;
      };

      devShells.${system}.default = import ./services/devshell.nix {
        inherit pkgs nixpkgs sops-nix;
      };

      checks.${system} = import ./checks { inherit pkgs nixpkgs sops-nix; };

      formatter.${system} = pkgs.nixfmt;
    };
}
