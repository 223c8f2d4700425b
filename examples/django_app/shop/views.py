"""Placing an order pushes the job that confirms it, inside the order's transaction."""

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from queue_core.contrib.django import push, push_in_transaction

from .jobs import ConfirmOrder
from .models import Order

STOCK = 10


class OutOfStock(Exception):
    pass


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> HttpResponse:
    """POST item=...&quantity=N[&push=in_transaction]. More than STOCK items: the
    transaction rolls back, and no job runs for the order that never was."""
    quantity = int(request.POST.get("quantity", "1"))
    try:
        with transaction.atomic():
            order = Order.objects.create(item=request.POST.get("item", "?"),
                                         quantity=quantity)
            if request.POST.get("push") == "in_transaction":
                # The job row is written in this very transaction (the db driver on the
                # same database): committed with the order, or not at all.
                push_in_transaction(ConfirmOrder(order.id))
            else:
                # "push_on_commit": True in QUEUE_CORE: pushed once the order commits.
                push(ConfirmOrder(order.id))
            if quantity > STOCK:
                raise OutOfStock
    except OutOfStock:
        return JsonResponse({"error": f"only {STOCK} in stock"}, status=409)
    return JsonResponse({"order": order.id}, status=201)


def show_order(request: HttpRequest, order_id: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=order_id)
    return JsonResponse({"order": order.id, "item": order.item, "status": order.status})
