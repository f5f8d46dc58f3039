"""`make prices`: the price table from the AWS Pricing API (needs credentials), for the instance types the
table holds and those the spec names. The Pricing API answers in us-east-1 for every region's prices."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pipelines.aws.pipeline import AwsError

USAGE = "Train:"  # SageMaker lists one product per use; training's price is the one the table keeps


def on_demand_usd(products: list[str], instance_type: str) -> float | None:
    """The hourly on-demand USD price of the training product among ``products`` (PriceList JSON strings)."""
    for text in products:
        product = json.loads(text)
        attributes = product.get("product", {}).get("attributes", {})
        if attributes.get("instanceName") != instance_type or USAGE not in attributes.get("usagetype", ""):
            continue
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = float(dimension.get("pricePerUnit", {}).get("USD", "0") or 0)
                if usd > 0:
                    return usd
    return None


def fetch(client, region: str, instance_types: list[str]) -> dict[str, float]:
    found = {}
    for instance_type in instance_types:
        pages = client.get_paginator("get_products").paginate(ServiceCode="AmazonSageMaker", Filters=[
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "instanceName", "Value": instance_type}])
        products = [p for page in pages for p in page.get("PriceList", [])]
        price = on_demand_usd(products, instance_type)
        if price is not None:
            found[instance_type] = price
    return found


def refresh(path: Path, region: str, wanted: list[str], client) -> tuple[int, list[str]]:
    """Update ``path`` for ``region``; returns (prices written, instance types without a price)."""
    table = json.loads(path.read_text(encoding="utf-8"))
    current = table["regions"].get(region, {})
    types = sorted(set(current) | set(wanted))
    found = fetch(client, region, types)
    if not found:
        raise AwsError(f"the Pricing API returned no SageMaker prices for {region}; nothing was changed")
    table["regions"][region] = {**current, **found}
    table["date"] = datetime.now(UTC).date().isoformat()
    table["_source"] = ("Amazon SageMaker AI on-demand training prices per instance-hour from the AWS Pricing API "
                        f"(`make prices`, {table['date']}); types it did not price keep their earlier value.")
    path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    return len(found), sorted(set(types) - set(found))
