"""Label raster conversions: colour-coded <-> class index (``colors``), class raster -> polygons
(``polygons``)."""
