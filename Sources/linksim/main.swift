print("linksim")
