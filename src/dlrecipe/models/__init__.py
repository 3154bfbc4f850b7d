"""Models: plain `nn.Module` nets (nets/), and the LightningModule that trains any of them."""
