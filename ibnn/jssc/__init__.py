"""Room `jssc` (notebook 08), above cost: the prototype's own classifier (J. Zhang, Z. Wang, N. Verma, IEEE JSSC
52(4):915-924, 2017) on the simulated chip. Binary-weight weak classifiers, one per column (`weak`), boosted into
a ten-way classifier with a digital weighted vote (`boost`), placed on the array (`columns`), trained in software
or per chip with the chip in the loop (`inloop`), standard-training baselines (`baselines`), the study's stages
(`study`: software; `onchip`: held-out chips; `sweep`: which nonideality and by how much) and its energy per
decision against digital systems (`energy`, `costs`)."""
