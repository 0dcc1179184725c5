"""What bleepline keeps: encrypted recordings and the keys that open them."""
